// Renders an Ollama TEMPLATE with Go's text/template, the engine Ollama itself uses, for the
// template-identity test. Stdin: {"template": "...", "conversations": [[{"role","content"}...]...]}.
// Stdout: a JSON list with one rendered string per conversation.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

// Message has the field names Ollama's templates see (.Role, .Content).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type input struct {
	Template      string      `json:"template"`
	Conversations [][]Message `json:"conversations"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("ollama").Parse(in.Template))
	out := []string{}
	for _, messages := range in.Conversations {
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]any{"Messages": messages}); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
