// Command kvfileparse reads env files with docker/cli's own parser
// (github.com/docker/cli/pkg/kvfile, the code behind `docker run --env-file`) so that
// tests can compare what docker reads with what was encrypted.
//
// It is a long-lived process: each stdin line is a JSON object {"path": "..."}; each
// answer is one stdout line, {"env": {...}} or {"error": "..."}. The lookup environment
// holds canary variables, so a bare KEY line that takes a value from it is visible.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"

	"github.com/docker/cli/pkg/kvfile"
)

type request struct {
	Path string `json:"path"`
}

type answer struct {
	Env   map[string]string `json:"env,omitempty"`
	Error string            `json:"error,omitempty"`
}

func main() {
	canaries := map[string]string{"X": "CANARY_X", "HOME": "CANARY_HOME", "A": "CANARY_A"}
	lookup := func(key string) (string, bool) {
		v, ok := canaries[key]
		return v, ok
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var ans answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			ans.Error = "bad request: " + err.Error()
		} else if lines, err := kvfile.Parse(req.Path, lookup); err != nil {
			ans.Error = err.Error()
		} else {
			// docker passes the list to the container in order: a later KEY wins.
			ans.Env = map[string]string{}
			for _, line := range lines {
				key, value, _ := strings.Cut(line, "=")
				ans.Env[key] = value
			}
		}
		if err := out.Encode(ans); err != nil {
			os.Exit(1)
		}
	}
}
