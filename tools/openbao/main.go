// Command bao builds the pinned OpenBao server used by platback's tests when
// PLATBACK_VAULT=openbao. It is a separate module so the project never links it.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
