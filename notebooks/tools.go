//go:build tools

// This file only records the dependency of the notebooks on GoMLX's margaid
// charts (github.com/gomlx/gomlx/ui/gonb/margaid, drawn with
// github.com/erkkah/margaid), so that `go mod tidy` keeps it in go.mod and
// go.sum: GoNB builds each cell against the repository's go.sum.
package notebooks

import _ "github.com/gomlx/gomlx/ui/gonb/margaid"
