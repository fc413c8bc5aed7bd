// Package receiptcmd is `cocoon receipt`: checks a sealed answer's receipt, as the client serves
// it at /v1/cocoon/receipts/{id}, offline, against the request and the answer the app kept.
package receiptcmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/cocoon-network/cocoon/roles/client"
)

// maxFile bounds the request and answer files read: a request body and a whole answer.
const maxFile = 256 << 20

// Command is `cocoon receipt verify FILE [--request F] [--answer F] [--save-cert F]`.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "receipt",
		Usage: "check the receipt of a sealed answer",
		Subcommands: []*cli.Command{{
			Name:      "verify",
			Usage:     "check a receipt (GET /v1/cocoon/receipts/{id} of the client) offline: the worker's signatures, its certificate, and the request and answer it names; exit 0 only when everything given checks out",
			ArgsUsage: "[--request F] [--answer F] [--save-cert F] RECEIPT.json",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "request", Usage: "the request body as the app sent it", DefaultText: "not checked"},
				&cli.StringFlag{Name: "answer", Usage: "the answer as the app received it (the JSON body, or the event stream)", DefaultText: "not checked"},
				&cli.StringFlag{Name: "save-cert", Usage: "write the worker's certificate (DER) here, to check its quote with cocoon attest verify --at <receipt time>", DefaultText: "not written"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("receipt verify: want one RECEIPT.json file, after the flags (save it from GET /v1/cocoon/receipts/{id})", 2)
				}
				return Verify(c.Args().First(), c.String("request"), c.String("answer"), c.String("save-cert"), c.App.Writer)
			},
		}},
	}
}

// Verify checks the receipt file at path against the request and answer files, when named, and
// prints a line per check that passed.
func Verify(path, requestPath, answerPath, saveCert string, out io.Writer) error {
	doc, err := readFile(path, "receipt")
	if err != nil {
		return err
	}
	var request, answer []byte
	if requestPath != "" {
		if request, err = readFile(requestPath, "request"); err != nil {
			return err
		}
	}
	if answerPath != "" {
		if answer, err = readFile(answerPath, "answer"); err != nil {
			return err
		}
	}
	lines, err := client.VerifyReceipt(doc, request, answer)
	for _, l := range lines {
		fmt.Fprintln(out, "ok   "+l)
	}
	if err != nil {
		return fmt.Errorf("receipt verify %s: %w", filepath.Base(path), err)
	}
	if saveCert != "" {
		r, err := client.ParseReceipt(doc)
		if err != nil {
			return err
		}
		if err := os.WriteFile(saveCert, r.WorkerCertificate, 0o644); err != nil {
			return fmt.Errorf("receipt verify: save the worker certificate: %w", err)
		}
		fmt.Fprintf(out, "saved the worker certificate to %s: check its quote with `cocoon attest verify %s --at %s`\n",
			saveCert, saveCert, r.Receipt.Time.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if request == nil || answer == nil {
		fmt.Fprintln(out, "note request and answer are checked only when --request and --answer name them")
	}
	return nil
}

func readFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("receipt verify: %s file: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("receipt verify: %s file: %w", what, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("receipt verify: %s file %s is over %d MiB", what, path, maxFile>>20)
	}
	return b, nil
}
