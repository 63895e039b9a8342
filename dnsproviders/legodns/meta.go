package legodns

// meta is what the generated table knows about one lego provider package.
type meta struct {
	env      []fieldEnv // environment variables per Config field
	required []string   // Go field paths NewDNSProvider always demands
}

// fieldEnv lists the environment variables lego reads for the Config
// field at path (a dotted Go field path), primary name first.
type fieldEnv struct {
	path  string
	names []string
}
