//go:build !unix

package eventstore

import (
	"errors"
	"os"
)

// Without flock the folder is not locked: roomd supports Unix hosts only.
var errWouldBlock = errors.New("locked")

func flock(*os.File) error   { return nil }
func funlock(*os.File) error { return nil }
