package nab

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Parts are the raw pieces of a score. TP and FN count windows (a window
// scores once, by its earliest detection), FP and TN count rows outside
// windows; rows in the probationary period are in none of them. NAB's own
// score tables count TP and FN in rows instead; only the weighted sums enter
// the score, and they are the same.
type Parts struct {
	TP int `json:"tp"`
	FP int `json:"fp"`
	FN int `json:"fn"`
	TN int `json:"tn"`
	// TPScore is the weighted sum of the windows' earliest detections (>= 0),
	// FPScore that of detections outside windows (<= 0), FNScore is -FN
	// weight per missed window (<= 0), and Raw their sum.
	TPScore float64 `json:"tp_score"`
	FPScore float64 `json:"fp_score"`
	FNScore float64 `json:"fn_score"`
	Raw     float64 `json:"raw"`
}

func (p *Parts) add(q Parts) {
	p.TP += q.TP
	p.FP += q.FP
	p.FN += q.FN
	p.TN += q.TN
	p.TPScore += q.TPScore
	p.FPScore += q.FPScore
	p.FNScore += q.FNScore
	p.Raw += q.Raw
}

// FileParts are one file's share of a corpus score.
type FileParts struct {
	Name string `json:"name"`
	Parts
}

// Outcome is a detector's NAB score on a corpus for one profile.
type Outcome struct {
	Profile Profile `json:"profile"`
	// Threshold is the score at and above which a row is a detection.
	Threshold float64 `json:"threshold"`
	// Score is NAB's normalised score, 100*(Raw-Null)/(Perfect-Null): 0 for
	// detecting nothing, 100 for detecting every window at its first row,
	// negative for worse than nothing.
	Score float64 `json:"score"`
	// Null is the raw score of the detector that detects nothing and
	// Perfect that of one detecting every window at its first row.
	Null    float64 `json:"null"`
	Perfect float64 `json:"perfect"`
	// Parts are the corpus totals; Files the same per file, in corpus order.
	Parts
	Files []FileParts `json:"files"`
}

// Score scores the corpus at a fixed threshold: a row is a detection when
// its anomaly score is >= threshold. It follows NAB v1.1's Sweeper. Where
// NAB's description leaves room, the rule was settled by reproducing the six
// published results of ARTime and CAD OSE on the shared corpus
// (TestPublishedScores); each alternative named below moves at least one of
// them by more than 0.005:
//
//   - The first ceil(min(floor(0.15*n), 750)) rows of an n-row file are
//     probationary: never a detection, a miss or a false alarm. (No
//     probation, or 10%, moves CAD OSE by 0.8 to 4.6 points.)
//   - σ(x) = 2/(1+e^(5x)) - 1 (= tanh(-2.5x)), and -1 for x > 3.
//   - A detection at row i of a window spanning rows L..R (width W = R-L+1)
//     weighs TP * σ(-(R-i+1)/W) / σ(-1): exactly TP at the first row, about
//     0.47 TP at the last. Position -(R-i)/W or (i-L)/(W-1)-1, or no
//     1/σ(-1) scaling, each move every score by 0.1 to 0.5. Only a window's
//     earliest detection counts (NAB keeps the maximum, the earliest).
//   - A detection outside windows weighs FP * σ(|i-P|/(W'-1)), with P the
//     last row and W' the width of the preceding window; a one-row window
//     reads as infinitely far (NAB would divide by zero). Dividing by W'
//     instead gives ARTime reward_low_FP 66.50, not the published 66.49.
//     With no preceding window the weight is -FP (weight 0 there moves the
//     scores by 1 to 7 points).
//   - A window with no detection costs -FN. A window whose rows are all
//     probationary is not scored (NAB never creates its entry).
//   - Null = -FN per scored window: NAB's null detector, whose optimised
//     threshold detects nothing. Perfect = TP per labelled window, as NAB's
//     runner computes it from the window count. No window of the shared
//     corpus touches a probationary period, so the numbers cannot tell
//     whether such a window counts; this follows NAB's code (only Perfect
//     counts it).
//
// Ties (Optimize) are not settled by the numbers, which come out the same
// whether or not a tie is split: rows with equal scores enter together
// because no threshold can separate them.
func Score(c Corpus, p Profile, threshold float64) (Outcome, error) {
	if math.IsNaN(threshold) {
		return Outcome{}, errors.New("NAB score: threshold is NaN")
	}
	sw, err := prepare(c, p)
	if err != nil {
		return Outcome{}, err
	}
	return sw.scoreAt(c, threshold), nil
}

// Optimize finds the threshold that maximises the corpus's raw score for
// the profile, as NAB's optimizer does, and returns the Outcome at it. The
// search is exact: it sweeps every distinct anomaly score from high to low,
// all rows with an equal score entering together (a threshold cannot split
// them), and also considers detecting nothing. Among equal best scores the
// highest threshold wins, as in NAB's stable sort. When detecting nothing
// is best the threshold is 1.1 (NAB's value) or, for scores above 1, the
// next float64 above the largest score.
func Optimize(c Corpus, p Profile) (Outcome, error) {
	sw, err := prepare(c, p)
	if err != nil {
		return Outcome{}, err
	}
	rows := slices.Clone(sw.rows)
	slices.SortStableFunc(rows, func(a, b sweepRow) int { return cmp.Compare(b.score, a.score) })
	best := make([]float64, len(sw.windowScored))
	for w := range best {
		best[w] = -p.FN
	}
	raw := sw.null
	bestRaw, bestThreshold := raw, sw.noDetection
	for i := 0; i < len(rows); {
		s := rows[i].score
		for ; i < len(rows) && rows[i].score == s; i++ {
			r := rows[i]
			if r.window < 0 {
				raw += p.FP * r.weight
				continue
			}
			if v := p.TP * r.weight; v > best[r.window] {
				raw += v - best[r.window]
				best[r.window] = v
			}
		}
		if raw > bestRaw {
			bestRaw, bestThreshold = raw, s
		}
	}
	return sw.scoreAt(c, bestThreshold), nil
}

// sweepRow is one scored (non-probationary) row. weight is σ(position) /
// σ(-1) inside a window (times TP) and σ(distance) or -1 outside (times FP).
type sweepRow struct {
	score  float64
	window int // index into sweep.windowScored, -1 outside every window
	weight float64
}

// sweep is a corpus reduced to what the threshold search needs.
type sweep struct {
	profile      Profile
	rows         []sweepRow // file by file, in time order
	fileEnd      []int      // rows[fileEnd[f-1]:fileEnd[f]] belong to file f
	fileWindows  []int      // windows [fileWindows[f-1], fileWindows[f]) belong to file f
	windowScored []bool     // the window has a non-probationary row
	null         float64
	perfect      float64
	noDetection  float64 // a threshold above every score
}

func prepare(c Corpus, p Profile) (*sweep, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("NAB score: %w", err)
	}
	sw := &sweep{profile: p, fileEnd: make([]int, len(c)), fileWindows: make([]int, len(c))}
	maxScore := math.Inf(-1)
	for fi := range c {
		f := &c[fi]
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("NAB score: file %q: %w", f.Name, err)
		}
		bounds, err := windowRows(f.Times, f.Windows)
		if err != nil {
			return nil, fmt.Errorf("NAB score: file %q: %w", f.Name, err)
		}
		sw.addFile(f.Scores, bounds)
		sw.fileEnd[fi] = len(sw.rows)
		sw.fileWindows[fi] = len(sw.windowScored)
		for _, s := range f.Scores {
			maxScore = max(maxScore, s)
		}
	}
	nScored := 0
	for _, ok := range sw.windowScored {
		if ok {
			nScored++
		}
	}
	if len(sw.windowScored) == 0 {
		return nil, fmt.Errorf("NAB score: %w", ErrNoWindows)
	}
	sw.null = -p.FN * float64(nScored)
	sw.perfect = p.TP * float64(len(sw.windowScored))
	sw.noDetection = 1.1
	if maxScore >= 1.1 {
		sw.noDetection = math.Nextafter(maxScore, math.Inf(1))
	}
	return sw, nil
}

// addFile appends a file's scored rows with their weights; bounds are its
// windows' first and last rows.
func (sw *sweep) addFile(scores []float64, bounds [][2]int) {
	base := len(sw.windowScored)
	for range bounds {
		sw.windowScored = append(sw.windowScored, false)
	}
	first := firstScoredRow(len(scores))
	maxTP := scaledSigmoid(-1)
	w := 0                      // the window at or after row i
	prevEnd, prevWidth := -1, 0 // the last window that ended before row i
	for i, s := range scores {
		in := w < len(bounds) && i >= bounds[w][0]
		row := sweepRow{score: s, window: -1}
		switch {
		case in:
			width := bounds[w][1] - bounds[w][0] + 1
			row.window = base + w
			row.weight = scaledSigmoid(-float64(bounds[w][1]-i+1)/float64(width)) / maxTP
		case prevEnd < 0:
			row.weight = -1
		case prevWidth == 1:
			row.weight = scaledSigmoid(math.Inf(1))
		default:
			row.weight = scaledSigmoid(float64(i-prevEnd) / float64(prevWidth-1))
		}
		if i >= first {
			sw.rows = append(sw.rows, row)
			if in {
				sw.windowScored[row.window] = true
			}
		}
		if in && i == bounds[w][1] {
			prevEnd, prevWidth = i, bounds[w][1]-bounds[w][0]+1
			w++
		}
	}
}

// scoreAt adds up the parts at a threshold, file by file.
func (sw *sweep) scoreAt(c Corpus, threshold float64) Outcome {
	p := sw.profile
	out := Outcome{Profile: p, Threshold: threshold, Null: sw.null, Perfect: sw.perfect, Files: make([]FileParts, len(c))}
	detected := make([]float64, len(sw.windowScored))
	hit := make([]bool, len(sw.windowScored))
	rowStart, winStart := 0, 0
	for fi := range c {
		var fp Parts
		for _, r := range sw.rows[rowStart:sw.fileEnd[fi]] {
			switch {
			case r.score < threshold:
				if r.window < 0 {
					fp.TN++
				}
			case r.window < 0:
				fp.FP++
				fp.FPScore += p.FP * r.weight
			case !hit[r.window]: // rows are in time order: the first is the earliest
				hit[r.window] = true
				detected[r.window] = p.TP * r.weight
			}
		}
		for w := winStart; w < sw.fileWindows[fi]; w++ {
			switch {
			case hit[w]:
				fp.TP++
				fp.TPScore += detected[w]
			case sw.windowScored[w]:
				fp.FN++
				fp.FNScore -= p.FN
			}
		}
		fp.Raw = fp.TPScore + fp.FPScore + fp.FNScore
		out.Files[fi] = FileParts{Name: c[fi].Name, Parts: fp}
		out.Parts.add(fp)
		rowStart, winStart = sw.fileEnd[fi], sw.fileWindows[fi]
	}
	out.Score = 100 * (out.Raw - sw.null) / (sw.perfect - sw.null)
	return out
}

// firstScoredRow is the index of the first row after the probationary
// period: NAB scores row i when i >= min(floor(0.15*n), 0.15*5000).
func firstScoredRow(n int) int {
	return int(math.Ceil(math.Min(math.Floor(0.15*float64(n)), 0.15*5000)))
}

// scaledSigmoid is NAB's 2*sigmoid(-5x) - 1, floored at -1 beyond x = 3.
func scaledSigmoid(x float64) float64 {
	if x > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*x)) - 1
}
