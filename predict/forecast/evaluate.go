package forecast

import "math"

// Levels are the interval levels Evaluate measures.
var Levels = [2]float64{0.8, 0.95}

// Evaluation is how a forecaster did on one series.
type Evaluation struct {
	// Period is the season of the seasonal naive benchmark, found in the
	// warm-up; 1 means plain naive.
	Period int `json:"period"`
	// N is the number of (origin, lead) forecasts scored.
	N int `json:"n"`
	// MASE is the model's mean absolute error over the in-sample mean
	// absolute one-step error of seasonal naive (Hyndman and Koehler,
	// 2006); MASENaive is seasonal naive's own h-step error on the same
	// scale, so the model beats the benchmark when MASE < MASENaive.
	MASE      float64 `json:"mase"`
	MASENaive float64 `json:"mase_seasonal_naive"`
	// Coverage80 and Coverage95 are the shares of outcomes inside the 80%
	// and 95% intervals.
	Coverage80 float64 `json:"coverage_80"`
	Coverage95 float64 `json:"coverage_95"`
	// sums, for pooling series
	absErr, absNaive, scale float64
	in80, in95, nInt        int
}

// Evaluate replays xs through model (wrapped in Conformal) one value at a
// time and scores every forecast of leads 1..horizon made after the first
// warmup values, against the outcome and against seasonal naive. Nothing
// is fitted on a value before it has been forecast.
func Evaluate(xs []float64, model Model, horizon, warmup int) Evaluation {
	horizon = max(horizon, 1)
	warmup = min(max(warmup, 1), len(xs))
	ev := Evaluation{Period: max(DetectPeriod(xs[:warmup], 0), 1)}
	cm := NewConformal(model, horizon, 0)
	naive := &SeasonalNaive{Period: ev.Period}
	for i := 0; i < len(xs); i++ {
		if i >= warmup {
			ev.score(cm, naive, xs, i, horizon)
		}
		cm.Update(xs[i])
		naive.Update(xs[i])
	}
	m := ev.Period
	for i := m; i < len(xs); i++ { // in-sample scale of MASE
		ev.scale += math.Abs(xs[i] - xs[i-m])
	}
	if len(xs) > m {
		ev.scale /= float64(len(xs) - m)
	}
	ev.finish()
	return ev
}

// score rates the forecasts made before xs[i] (origin i-1) of xs[i-1+h].
func (ev *Evaluation) score(cm *Conformal, naive *SeasonalNaive, xs []float64, i, horizon int) {
	for h := 1; h <= horizon && i-1+h < len(xs); h++ {
		y := xs[i-1+h]
		mean, ok := cm.Model.Predict(h)
		nv, nok := naive.Predict(h)
		if !ok || !nok {
			continue
		}
		ev.N++
		ev.absErr += math.Abs(y - mean)
		ev.absNaive += math.Abs(y - nv)
		_, lo80, hi80, ok80 := cm.Predict(h, Levels[0])
		_, lo95, hi95, ok95 := cm.Predict(h, Levels[1])
		if !ok80 || !ok95 {
			continue
		}
		ev.nInt++
		if y >= lo80 && y <= hi80 {
			ev.in80++
		}
		if y >= lo95 && y <= hi95 {
			ev.in95++
		}
	}
}

func (ev *Evaluation) finish() {
	if ev.N > 0 && ev.scale > 0 {
		ev.MASE = ev.absErr / float64(ev.N) / ev.scale
		ev.MASENaive = ev.absNaive / float64(ev.N) / ev.scale
	}
	if ev.nInt > 0 {
		ev.Coverage80 = float64(ev.in80) / float64(ev.nInt)
		ev.Coverage95 = float64(ev.in95) / float64(ev.nInt)
	}
}

// Pool combines series: MASE as the mean of the series' MASEs (each
// series is on its own scale), coverage over all intervals together.
func Pool(evs []Evaluation) Evaluation {
	var out Evaluation
	var n int
	for _, ev := range evs {
		if ev.N == 0 || ev.scale == 0 {
			continue
		}
		n++
		out.N += ev.N
		out.MASE += ev.MASE
		out.MASENaive += ev.MASENaive
		out.in80 += ev.in80
		out.in95 += ev.in95
		out.nInt += ev.nInt
	}
	if n > 0 {
		out.MASE /= float64(n)
		out.MASENaive /= float64(n)
	}
	if out.nInt > 0 {
		out.Coverage80 = float64(out.in80) / float64(out.nInt)
		out.Coverage95 = float64(out.in95) / float64(out.nInt)
	}
	return out
}
