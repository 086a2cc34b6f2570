// Package jsclient hands the JavaScript client (the npm package in this
// directory) to the Go programs that serve it: the web viewer serves this
// very module to its page, so the page and every other JavaScript app run
// one implementation of the protocol, byte for byte.
package jsclient

import _ "embed"

// Module is emojicast.js, the package's ES module.
//
//go:embed emojicast.js
var Module []byte
