package config_test

import (
	"fmt"
	"log"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/config"
)

func ExampleLoader_Load() {
	// A fixed environment keeps the result independent of the process's.
	env := map[string]string{}
	loader := config.Loader{LookupEnv: func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}}
	cfg, err := loader.Load("testdata/merge/fastagent.config.yaml")
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range cfg.Warnings {
		log.Print(w)
	}
	fmt.Println("secrets from", cfg.SecretsPath)
	for _, s := range cfg.Servers {
		if s.Transport == config.Stdio {
			continue // run by fast-agent, not proxied
		}
		fmt.Printf("%s: %s %s persist=%s listen=%q\n", s.Name, s.Transport, s.URL, s.Auth.Persist, cfg.Listen[s.Name])
	}
	// Output:
	// secrets from testdata/merge/fastagent.secrets.yaml
	// gh: http https://api.githubcopilot.com/mcp/ persist=keyring listen="127.0.0.1:9102"
	// hf: http https://huggingface.co/mcp?login persist=memory listen="127.0.0.1:8101"
	// private: sse https://private.example.com/mcp persist=keyring listen=""
}

func ExampleNewServer() {
	s, err := config.NewServer("hf", "https://huggingface.co/mcp?login", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Transport, s.URL, s.Auth.OAuth, s.Auth.RedirectPort)

	_, err = config.NewServer("bad", "huggingface.co/mcp", config.HTTP)
	fmt.Println(err)
	// Output:
	// http https://huggingface.co/mcp?login true 3030
	// config: server "bad": url: must be an absolute URL (http:// or https://)
}
