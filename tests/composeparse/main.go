// Command composeparse reads .env files with Docker Compose's own parser
// (github.com/compose-spec/compose-go/v2/dotenv, the code behind `env_file:` and the
// project `.env`) so that tests can compare what Compose reads with what was encrypted.
//
// It is a long-lived process: each stdin line is a JSON object {"path": "..."}; each
// answer is one stdout line, {"env": {...}} or {"error": "..."}. The lookup environment
// holds canary variables, so any interpolation that should not happen changes a value.
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"github.com/compose-spec/compose-go/v2/dotenv"
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
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var ans answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			ans.Error = "bad request: " + err.Error()
		} else if env, err := dotenv.GetEnvFromFile(canaries, []string{req.Path}); err != nil {
			ans.Error = err.Error()
		} else {
			ans.Env = env
		}
		if err := out.Encode(ans); err != nil {
			os.Exit(1)
		}
	}
}
