// Command vault builds the pinned HashiCorp Vault server used by platback's
// tests. It is a separate module so the project never links Vault.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
