package gateway

import (
	"net"
	"syscall"
	"unsafe"
)

// sendRoom returns how many more bytes the kernel will take on c without a
// write blocking (the send buffer's payload share less what is queued in it,
// sent but unacknowledged or not sent yet), and whether nothing is queued.
// ok is false when c is not a socket it can ask.
func sendRoom(c net.Conn) (room int, empty, ok bool) {
	sc, isSys := c.(syscall.Conn)
	if !isSys {
		return 0, false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false, false
	}
	var queued, sndbuf int
	var qerr, berr error
	if err := raw.Control(func(fd uintptr) {
		var q int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q))); e != 0 {
			qerr = e
		}
		queued = int(q)
		sndbuf, berr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	}); err != nil || qerr != nil || berr != nil {
		return 0, false, false
	}
	// Linux reports twice the size asked for and counts its bookkeeping
	// against it: half is what payload gets, conservatively.
	return max(sndbuf/2-queued, 0), queued == 0, true
}
