package main

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
)

// readmeCommands are the shell lines of README.md's code blocks that run cocoon, with
// comments and line continuations folded.
func readmeCommands(t *testing.T) (first []string, cocoon [][]string) {
	t.Helper()
	f, err := os.Open("README.md")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	inBlock, blocks, pending := false, 0, ""
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock && strings.TrimPrefix(line, "```") == "sh"
			if inBlock {
				blocks++
			}
			continue
		}
		if !inBlock {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(pending + " " + strings.TrimSpace(line))
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending = rest
			continue
		}
		pending = ""
		if blocks == 1 && line != "" {
			first = append(first, line)
		}
		for _, cmd := range strings.Split(line, "&&") {
			words := strings.Fields(cmd)
			if len(words) > 0 && words[0] == "cocoon" {
				cocoon = append(cocoon, words[1:])
			}
			if len(words) > 2 && words[0] == "go" && words[1] == "run" && words[2] == "." {
				cocoon = append(cocoon, words[3:])
			}
		}
	}
	require.NoError(t, sc.Err())
	return first, cocoon
}

// TestReadmeCommands keeps README.md from drifting from the code: its first block is the demo and
// exactly the test command CI runs (TestDemoOnce runs the demo), and every other cocoon command
// it shows names a real command with flags that command defines.
func TestReadmeCommands(t *testing.T) {
	first, cmds := readmeCommands(t)
	require.Len(t, first, 2, "README.md starts with two commands: the demo and the tests")
	assert.Equal(t, "go run . demo", first[0])
	ci, err := os.ReadFile(".ci/run")
	require.NoError(t, err)
	assert.Contains(t, string(ci), "exec "+first[1]+"\n", ".ci/run runs the README's test command")

	require.NotEmpty(t, cmds)
	app := newApp()
	flagName := regexp.MustCompile(`^--?([a-z0-9-]+)`)
	for _, words := range cmds {
		t.Run(strings.Join(words, " "), func(t *testing.T) {
			cmds, flags := app.Commands, []cli.Flag{}
			var path []string
			for _, w := range words {
				if strings.HasPrefix(w, "-") {
					m := flagName.FindStringSubmatch(w)
					require.NotNil(t, m, "flag %q", w)
					assert.True(t, hasFlag(flags, m[1]), "cocoon %s has no flag --%s", strings.Join(path, " "), m[1])
					continue
				}
				var next *cli.Command
				for _, c := range cmds {
					if c.HasName(w) {
						next = c
					}
				}
				if next == nil {
					// An argument: the command path ends here, flags may follow. A command with
					// subcommands takes none.
					require.Empty(t, cmds, "cocoon %s has no command %q", strings.Join(path, " "), w)
					continue
				}
				path = append(path, w)
				cmds, flags = next.Subcommands, append(flags, next.Flags...)
			}
			require.NotEmpty(t, path)
		})
	}
}

func hasFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}
