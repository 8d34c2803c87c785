package hip

import (
	"fmt"
	"strconv"
)

// deviceIndex is the device GRETA_DEVICE (value s, "" when unset) selects among count
// visible devices.
func deviceIndex(s string, count int) (int, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v >= count {
		return 0, fmt.Errorf("hip: %s=%q: want a device index in 0..%d (%d visible)", EnvDevice, s, count-1, count)
	}
	return v, nil
}
