// Package wire defines the messages that roles exchange over attested connections and the frames
// that carry them. Messages are protobuf (wire.proto, one versioned definition of each); a frame is
//
//	length (4 bytes, big endian; counts type and payload) | type (1 byte) | payload (protobuf)
//
// with a maximum frame size checked before any payload is read, so a peer cannot make us allocate
// more than the limit. Only transport and the role packages import wire.
package wire
