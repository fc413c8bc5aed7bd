package toncenter_test

import (
	"strings"
	"testing"

	"github.com/cocoon-network/cocoon/settle/chain/toncenter"
)

// FuzzAnswers: no answer crashes the client's parsers; each is read or refused. Seeded with
// toncenter's shapes and the server's own answers for the registry, proxy and wallet states of
// the chainserve tests (shapes, not recordings: code and data are small real cells).
func FuzzAnswers(f *testing.F) {
	for _, s := range []string{
		uninitAnswer, noneAnswer, seqnoAnswer,
		strings.Replace(uninitAnswer, `"state":"uninitialized"`, `"state":"active","code":"te6cckEBAQEAAgAAAEysuc0=","data":"te6cckEBAQEAAgAAAEysuc0="`, 1),
		strings.Replace(uninitAnswer, `"state":"uninitialized"`, `"state":"frozen"`, 1),
		`{"ok":true,"result":{"@type":"smc.runResult","stack":[["num","-0x10"],["cell",{"bytes":"te6cckEBAQEAAgAAAEysuc0="}]],"exit_code":-13}}`,
		`{"ok":true,"result":{"@type":"cocoon.faucet","balance":"5"}}`,
		`{"ok":false,"error":"x","code":500}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := toncenter.ParseEnvelope(b)
		if err != nil || !env.OK {
			return
		}
		_, _ = toncenter.ParseAddressInformation(env.Result)
		_, _ = toncenter.ParseFaucetResult(env.Result)
		if r, err := toncenter.ParseRunResult(env.Result); err == nil {
			for _, e := range r.Stack {
				_, _ = toncenter.Num(e)
			}
		}
	})
}
