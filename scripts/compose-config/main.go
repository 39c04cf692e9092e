// compose-config loads a compose file the way `docker compose config` does (the
// compose-spec loader that Docker Compose itself uses), with the variables of an
// env file, and prints the resolved project or the loader's error. It needs no
// Docker engine. tests/unit/test_compose.py runs it; scripts/test builds it.
//
//	compose-config -f docker-compose.yml --env-file .env.example
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	file := flag.String("f", "docker-compose.yml", "compose file")
	envFile := flag.String("env-file", ".env", "env file with the deployment's variables")
	flag.Parse()
	options, err := cli.NewProjectOptions(
		[]string{*file},
		cli.WithEnvFiles(*envFile),
		cli.WithDotEnv,
		cli.WithName("rasd"),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
