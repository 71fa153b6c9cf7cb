//go:build !goexperiment.simd

package engine_test

const builtWithSIMD = false
