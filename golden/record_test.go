package golden

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seedSample is the sample line of the seed report's Appendix B, verbatim: its hash has 65
// hex digits and its route does not match its phase.
const seedSample = `{"prompt_id":"p6_len_16","token_id":826,"pos_id":826,"logical_tok_idx":5,"phase":"prefill_last","layer":0,"tensor_name":"residual_pre_attn","route":"decode_attention_main","timestamp":"2026-02-06T15:14:13Z","git_commit_hash":"aad424dca7ef7f4e9142a5d4df23168bb1d087f2","hash":"sha256:3a7b2c1d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2","nz_count":4096}`

func TestRecordSeedSample(t *testing.T) {
	var r Record
	if err := json.Unmarshal([]byte(seedSample), &r); err != nil {
		t.Fatal(err)
	}
	want := Record{
		PromptID: "p6_len_16", TokenID: 826, PosID: 826, LogicalTokIdx: 5, Phase: PhasePrefillLast,
		Layer: 0, TensorName: "residual_pre_attn", Route: "decode_attention_main",
		Timestamp: "2026-02-06T15:14:13Z", GitCommitHash: "aad424dca7ef7f4e9142a5d4df23168bb1d087f2",
		Hash: seedSampleHash, NZCount: 4096,
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("seed sample (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != seedSample {
		t.Errorf("re-marshalled seed sample:\n got %s\nwant %s", b, seedSample)
	}
}

func TestRecordRoundTripKeepsUnknownFields(t *testing.T) {
	in := `{"zeta":[1, 2],"prompt_id":"p","pos_id":3,"layer":1,"tensor_name":"v","hash":"h","alpha":{"b": null},"sketch":null,"raw_file":"r.npy","shape":[4],"dtype":"f32","top5_tokens":[9,8,7,6,5]}`
	var r Record
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	wantExtra := map[string]json.RawMessage{"zeta": json.RawMessage(`[1, 2]`), "alpha": json.RawMessage(`{"b": null}`)}
	if diff := cmp.Diff(wantExtra, r.Extra); diff != "" {
		t.Errorf("Extra (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Seed fields in contract order, extensions, then unknown fields sorted and compacted.
	const want = `{"prompt_id":"p","token_id":0,"pos_id":3,"logical_tok_idx":0,"phase":"","layer":1,"tensor_name":"v","route":"","timestamp":"","git_commit_hash":"","hash":"h","nz_count":0,"top5_tokens":[9,8,7,6,5],"shape":[4],"dtype":"f32","raw_file":"r.npy","alpha":{"b":null},"zeta":[1,2]}`
	if string(b) != want {
		t.Errorf("marshalled:\n got %s\nwant %s", b, want)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	back.Extra["alpha"], back.Extra["zeta"] = json.RawMessage(`{"b": null}`), json.RawMessage(`[1, 2]`)
	if diff := cmp.Diff(r, back); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
}

func TestRecordExtraCannotShadowFields(t *testing.T) {
	r := Record{PromptID: "p", TensorName: "v", Hash: "h", Extra: map[string]json.RawMessage{"hash": json.RawMessage(`"evil"`), "x": json.RawMessage(`1`)}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), `"hash"`) != 1 || !strings.HasSuffix(string(b), `"x":1}`) {
		t.Errorf("marshalled %s: want one hash field and x kept", b)
	}
}

func TestRecordTimestampForms(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"2026-02-06T15:14:13Z"`, "2026-02-06T15:14:13Z"},
		{`1770390853`, "1770390853"},
		{`1.770390853e9`, "1.770390853e9"},
	}
	for _, tc := range tests {
		var r Record
		line := `{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"v","hash":"h","timestamp":` + tc.in + `}`
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Errorf("timestamp %s: %v", tc.in, err)
			continue
		}
		if r.Timestamp != tc.want {
			t.Errorf("timestamp %s read as %q, want %q", tc.in, r.Timestamp, tc.want)
		}
	}
}

func TestRecordErrors(t *testing.T) {
	const base = `"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"v","hash":"h"`
	tests := []struct{ name, in, want string }{
		{"no prompt_id", `{"pos_id":0,"layer":0,"tensor_name":"v","hash":"h"}`, `missing field "prompt_id"`},
		{"no hash", `{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"v"}`, `missing field "hash"`},
		{"no layer", `{"prompt_id":"p","pos_id":0,"tensor_name":"v","hash":"h"}`, `missing field "layer"`},
		{"empty prompt_id", `{"prompt_id":"","pos_id":0,"layer":0,"tensor_name":"v","hash":"h"}`, `"prompt_id": empty`},
		{"empty tensor_name", `{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"","hash":"h"}`, `"tensor_name": empty`},
		{"string position", `{` + base + `,"token_id":"x"}`, `field "token_id": got a JSON string, want an integer`},
		{"fractional layer", `{"prompt_id":"p","pos_id":0,"layer":0.5,"tensor_name":"v","hash":"h"}`, `field "layer"`},
		{"numeric hash", `{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"v","hash":7}`, `field "hash": got a JSON number, want a string`},
		{"boolean timestamp", `{` + base + `,"timestamp":true}`, `field "timestamp": want a string or a number`},
		{"bad sketch", `{` + base + `,"sketch":{"v":1,"n":2,"d":"AA=="}}`, `field "sketch": sketch data: 1 bytes`},
		{"array", `[]`, `cannot unmarshal array`},
		{"null", `null`, `record is null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := json.Unmarshal([]byte(tc.in), &r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Unmarshal(%s) error %v, want one containing %q", tc.in, err, tc.want)
			}
		})
	}
}
