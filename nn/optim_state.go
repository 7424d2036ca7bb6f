package nn

import "fmt"

// State returns AdamW's step count and copies of the first and second
// moments of params (nil for a param that was never updated), so that a
// training loop can checkpoint the optimizer and resume bit-identically.
func (o *AdamW) State(params []*Var) (step int, m, v [][]float32) {
	m = make([][]float32, len(params))
	v = make([][]float32, len(params))
	for i, p := range params {
		if st, ok := o.state[p]; ok {
			m[i] = append([]float32(nil), st[0]...)
			v[i] = append([]float32(nil), st[1]...)
		}
	}
	return o.t, m, v
}

// SetState restores a state returned by State for the same params (in the
// same order). A nil moment leaves that param without state.
func (o *AdamW) SetState(params []*Var, step int, m, v [][]float32) error {
	if len(m) != len(params) || len(v) != len(params) || step < 0 {
		return fmt.Errorf("nn: AdamW state for %d/%d params at step %d, want %d params", len(m), len(v), step, len(params))
	}
	state := map[*Var][2][]float32{}
	for i, p := range params {
		if m[i] == nil && v[i] == nil {
			continue
		}
		if len(m[i]) != p.Value.Size() || len(v[i]) != p.Value.Size() {
			return fmt.Errorf("nn: AdamW state of param %d has %d/%d values, want %d", i, len(m[i]), len(v[i]), p.Value.Size())
		}
		state[p] = [2][]float32{append([]float32(nil), m[i]...), append([]float32(nil), v[i]...)}
	}
	o.t, o.state = step, state
	return nil
}
