// Command godotenvparse reads env files with github.com/joho/godotenv (the Go port of
// Ruby's dotenv), for scripts/reader_matrix.py: one JSON request line {"path": "..."} in,
// one answer line {"env": {...}} or {"error": "..."} out.
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"github.com/joho/godotenv"
)

type request struct {
	Path string `json:"path"`
}

type answer struct {
	Env   map[string]string `json:"env,omitempty"`
	Error string            `json:"error,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var ans answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			ans.Error = "bad request: " + err.Error()
		} else if env, err := godotenv.Read(req.Path); err != nil {
			ans.Error = err.Error()
		} else {
			ans.Env = env
		}
		if err := out.Encode(ans); err != nil {
			os.Exit(1)
		}
	}
}
