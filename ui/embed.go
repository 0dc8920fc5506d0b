// Package ui holds the templates and static assets of the web UI that the ticket
// service (package tickets) serves: server-rendered html/template pages with htmx
// for interactions. Everything is embedded in the binary; there is no Node build.
//
// Vendored files and their licences:
//
//	static/htmx-2.0.11.min.js   htmx 2.0.11 from the npm package htmx.org, Zero-Clause BSD
//	                            (static/htmx-LICENSE.txt), sha256 d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
package ui

import (
	"embed"
	"io/fs"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed static
var static embed.FS

// Templates are the page templates: layout.html defines the frame, every other
// file a page that fills its "content" block.
func Templates() fs.FS { return templates }

// Static are the assets served under /static/.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return sub
}
