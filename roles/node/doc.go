// Package node builds each role from a config.Config: its inference engine, its attested
// transport, its payments (the proxy's meter, a client's or worker's wallet and signed states)
// and its keys, and runs the role together with what it settles through. It is the only package
// besides main that imports the three roles; config stays the schema and opens nothing.
package node
