package retention

import "github.com/pgward/pgward/internal/config"

// FromConfig is the policy the options' keep-* keys give.
func FromConfig(k config.Keep) Policy {
	return Policy{Last: k.Last, Within: k.Within, Daily: k.Daily, Weekly: k.Weekly, Monthly: k.Monthly, Yearly: k.Yearly}
}
