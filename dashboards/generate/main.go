// Command generate writes the Sluice Grafana dashboards as JSON files into
// the current directory (the dashboards folder, when run by go generate).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/sluicemq/sluice/dashboards"
)

func main() {
	all := dashboards.All()
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := dashboards.Render(all[name])
		if err == nil {
			err = os.WriteFile(filepath.Join(".", name), data, 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "generate: %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Println(name)
	}
}
