// Package readme holds no code: its test checks that every Go snippet of
// the module's README.md compiles and passes go vet against this checkout.
package readme
