// Package units formats quantities for people: what the CLI prints and the daemon's status
// page shows. It holds no state and imports nothing of ours.
package units

import "fmt"

// Bytes is a size in binary units with one decimal: "512 B", "3.2 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
