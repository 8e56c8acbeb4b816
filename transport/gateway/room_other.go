//go:build !linux

package gateway

import "net"

// sendRoom cannot ask the kernel here: writes to a client that stops reading
// block until WriteTimeout, and may then be cut mid-frame.
func sendRoom(net.Conn) (room int, empty, ok bool) { return 0, false, false }
