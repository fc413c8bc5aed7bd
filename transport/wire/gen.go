package wire

// The generated code is committed; regenerate after editing wire.proto (needs protoc and protoc-gen-go).
//go:generate protoc --go_out=. --go_opt=paths=source_relative wire.proto
