package hip

import "testing"

func TestDeviceIndex(t *testing.T) {
	tests := []struct {
		env     string
		count   int
		want    int
		wantErr string
	}{
		{"", 1, 0, ""},
		{"0", 2, 0, ""},
		{"1", 2, 1, ""},
		{"2", 2, 0, `hip: GRETA_DEVICE="2": want a device index in 0..1 (2 visible)`},
		{"-1", 2, 0, `hip: GRETA_DEVICE="-1": want a device index in 0..1 (2 visible)`},
		{"gpu1", 4, 0, `hip: GRETA_DEVICE="gpu1": want a device index in 0..3 (4 visible)`},
	}
	for _, tc := range tests {
		got, err := deviceIndex(tc.env, tc.count)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if got != tc.want || errText != tc.wantErr {
			t.Errorf("deviceIndex(%q, %d) = %d, %q; want %d, %q", tc.env, tc.count, got, errText, tc.want, tc.wantErr)
		}
	}
}
