package kafka

import "net"

// SetDialer makes the group open its connections through d, so a test can
// cut a member off the network at once, as a SIGKILL of its process would.
func SetDialer(o *GroupOptions, d interface {
	Dial(network, addr string) (net.Conn, error)
}) {
	o.dialer = d
}
