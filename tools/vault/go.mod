module github.com/platback/platback/tools/vault

go 1.26

require (
	github.com/hashicorp/vault v1.19.5
	github.com/hashicorp/vault/sdk v0.17.0
)

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
