package brecq

import (
	"errors"
	"fmt"
	"strings"
)

// errorf is fmt.Errorf with the package's error prefix "brecq: ", which the
// message of a wrapped brecq error (%w) does not repeat; errors.Is and
// errors.As still reach the wrapped error.
func errorf(format string, args ...any) error {
	err := fmt.Errorf("brecq: "+format, args...)
	if msg := strings.ReplaceAll(err.Error(), ": brecq: ", ": "); msg != err.Error() {
		return &prefixedError{msg: msg, err: errors.Unwrap(err)}
	}
	return err
}

// prefixedError is an error whose message was rewritten by errorf.
type prefixedError struct {
	msg string
	err error
}

func (e *prefixedError) Error() string { return e.msg }
func (e *prefixedError) Unwrap() error { return e.err }
