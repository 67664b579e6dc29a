package nab

import (
	"fmt"
	"strings"
)

// Profile is one of NAB's application profiles: the weights of a true
// positive, a false positive, a false negative and a true negative.
// NAB's Sweeper never uses TN; it is kept so that a profile reads like
// NAB's cost matrix.
type Profile struct {
	Name string  `json:"name"`
	TP   float64 `json:"tp"`
	FP   float64 `json:"fp"`
	FN   float64 `json:"fn"`
	TN   float64 `json:"tn"`
}

// NAB's profile names, as they appear in its config/profiles.json.
const (
	ProfileStandard    = "standard"
	ProfileRewardLowFP = "reward_low_FP_rate"
	ProfileRewardLowFN = "reward_low_FN_rate"
)

// Profiles returns NAB's three profiles, standard first. The slice is new on
// every call, so callers may change it.
func Profiles() []Profile {
	return []Profile{
		{Name: ProfileStandard, TP: 1.0, FP: 0.11, FN: 1.0, TN: 1.0},
		{Name: ProfileRewardLowFP, TP: 1.0, FP: 0.22, FN: 1.0, TN: 1.0},
		{Name: ProfileRewardLowFN, TP: 1.0, FP: 0.11, FN: 2.0, TN: 1.0},
	}
}

// ProfileByName returns the NAB profile called name. It also accepts the
// short forms "reward_low_FP" and "reward_low_FN".
func ProfileByName(name string) (Profile, error) {
	want := name
	if strings.HasPrefix(want, "reward_low_") && !strings.HasSuffix(want, "_rate") {
		want += "_rate"
	}
	names := make([]string, 0, 3)
	for _, p := range Profiles() {
		if p.Name == want {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Profile{}, fmt.Errorf("unknown NAB profile %q: want one of %s", name, strings.Join(names, ", "))
}

// validate rejects weights that would make the normalisation meaningless:
// the perfect and null scores must differ, so TP+FN must be positive.
func (p Profile) validate() error {
	for _, w := range []struct {
		name string
		v    float64
	}{{"TP", p.TP}, {"FP", p.FP}, {"FN", p.FN}, {"TN", p.TN}} {
		if !isFinite(w.v) || w.v < 0 {
			return fmt.Errorf("profile %q: weight %s is %v, want a finite number >= 0", p.Name, w.name, w.v)
		}
	}
	if p.TP+p.FN == 0 {
		return fmt.Errorf("profile %q: TP and FN weights are both 0, so every detector scores the same", p.Name)
	}
	return nil
}
