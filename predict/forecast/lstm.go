package forecast

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// LSTMConfig tunes an LSTM forecaster; zero fields take defaults.
type LSTMConfig struct {
	Hidden  int     // units (default 16)
	Steps   int     // values unrolled per sample (default 24)
	Horizon int     // leads forecast at once (default 12); Predict(h) is ok for h <= Horizon
	History int     // recent values trained on (default 1024)
	Retrain int     // new values between trainings (default 256)
	Epochs  int     // passes over the history per training (default 1)
	Rate    float64 // Adam step size (default 0.005)
	Seed    uint64  // weight initialisation
}

func (c LSTMConfig) withDefaults() LSTMConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Hidden, 16)
	def(&c.Steps, 24)
	def(&c.Horizon, 12)
	def(&c.History, 1024)
	def(&c.Retrain, 256)
	def(&c.Epochs, 1)
	if !(c.Rate > 0) {
		c.Rate = 0.005
	}
	return c
}

// huberDelta is where the training loss turns from squared to absolute, in
// standard deviations of the series: a spike teaches the network no more
// than a move of one deviation would, so that operations data, whose
// spikes dominate a squared loss, trains on its ordinary shape.
const huberDelta = 1.0

// LSTM is a one-layer long short-term memory network (Hochreiter and
// Schmidhuber, 1997) that reads the last Steps values, standardised by the
// mean and deviation of its training history, and outputs the next Horizon
// values at once (the multi-output strategy: no forecast is fed back, so
// errors do not compound over the leads). Each output is the change from
// the newest value, so an untrained network is the naive forecast and
// training only has to learn what naive misses. It is trained by
// backpropagation through time with Adam and a Huber loss on the series'
// recent History, again every Retrain values, so that it follows the series.
//
// It is written on gonum's BLAS (the gate products are Gemv, the weight
// gradients Ger) rather than on a deep-learning library: gorgonia no longer
// starts on Go 1.26, and gomlx's pure-Go backend needs a build tag and an
// environment variable for a network of a few thousand weights, which
// plain BLAS serves in microseconds.
type LSTM struct {
	cfg     LSTMConfig
	hist    []float64
	since   int
	ready   bool
	mu, sd  float64
	net     lstmNet
	adam    adamState
	rng     *rand.Rand
	path    []float64 // forecasts from the newest value, path[k-1] is lead k; nil when stale
	scratch *tape
	in      []float64
}

var _ Model = (*LSTM)(nil)

// lstmNet holds the weights: W (4H × (H+1)) acting on [h; x], gate biases,
// and a linear read-out V (Out × H) with bias C.
type lstmNet struct {
	H, Out int
	W      blas64.General // rows: input, forget, cell, output gates
	B      []float64
	V      blas64.General
	C      []float64
	grad   struct {
		W, V blas64.General
		B, C []float64
	}
	// backward's scratch
	dh, dc, dpre, dhin, dy []float64
}

func general(r, c int) blas64.General {
	return blas64.General{Rows: r, Cols: c, Stride: c, Data: make([]float64, r*c)}
}

// NewLSTM returns an untrained network.
func NewLSTM(cfg LSTMConfig) *LSTM {
	cfg = cfg.withDefaults()
	l := &LSTM{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x15ad))}
	H, O := cfg.Hidden, cfg.Horizon
	n := &l.net
	n.H, n.Out = H, O
	n.W, n.V = general(4*H, H+1), general(O, H)
	n.B, n.C = make([]float64, 4*H), make([]float64, O)
	n.grad.W, n.grad.V = general(4*H, H+1), general(O, H)
	n.grad.B, n.grad.C = make([]float64, 4*H), make([]float64, O)
	n.dh, n.dc, n.dpre, n.dhin, n.dy = make([]float64, H), make([]float64, H), make([]float64, 4*H), make([]float64, H+1), make([]float64, O)
	scale := 1 / math.Sqrt(float64(H+1))
	for i := range n.W.Data {
		n.W.Data[i] = (l.rng.Float64()*2 - 1) * scale
	}
	for i := H; i < 2*H; i++ {
		n.B[i] = 1 // forget gate open at first (Gers et al., 2000)
	}
	for i := range n.V.Data {
		n.V.Data[i] = (l.rng.Float64()*2 - 1) * scale * 0.1
	}
	l.adam = newAdam(len(n.W.Data) + len(n.B) + len(n.V.Data) + len(n.C))
	l.scratch = newTape(H, cfg.Steps)
	return l
}

// Update adds v and retrains when Retrain values have passed.
func (l *LSTM) Update(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	l.hist = append(l.hist, v)
	if len(l.hist) > l.cfg.History {
		l.hist = l.hist[len(l.hist)-l.cfg.History:]
	}
	l.since++
	l.path = l.path[:0]
	if (!l.ready && len(l.hist) >= 4*(l.cfg.Steps+l.cfg.Horizon)) || (l.ready && l.since >= l.cfg.Retrain) {
		l.train()
	}
}

// Predict forecasts k steps ahead, 1 <= k <= Horizon.
func (l *LSTM) Predict(k int) (float64, bool) {
	T := l.cfg.Steps
	if !l.ready || k < 1 || k > l.cfg.Horizon || len(l.hist) < T {
		return 0, false
	}
	if len(l.path) == 0 {
		l.in = l.in[:0]
		for _, v := range l.hist[len(l.hist)-T:] {
			l.in = append(l.in, (v-l.mu)/l.sd)
		}
		out := l.net.forward(l.in, l.scratch)
		last := l.in[T-1]
		for _, d := range out {
			l.path = append(l.path, (last+d)*l.sd+l.mu)
		}
	}
	v := l.path[k-1]
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

func (l *LSTM) train() {
	l.since = 0
	var m, s float64
	for _, v := range l.hist {
		m += v / float64(len(l.hist))
	}
	for _, v := range l.hist {
		s += (v - m) * (v - m) / float64(len(l.hist))
	}
	s = math.Sqrt(s)
	if !(s > 0) || math.IsInf(s, 0) {
		s = 1
	}
	l.mu, l.sd = m, s
	T, O := l.cfg.Steps, l.cfg.Horizon
	z := make([]float64, len(l.hist))
	for i, v := range l.hist {
		z[i] = (v - m) / s
	}
	n := len(z) - T - O + 1
	if n < 1 {
		return
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	tp := newTape(l.net.H, T)
	dy := l.net.dy
	for range l.cfg.Epochs {
		l.rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			l.net.zeroGrad()
			out := l.net.forward(z[i:i+T], tp)
			last := z[i+T-1]
			for k := range O {
				e := last + out[k] - z[i+T+k]
				dy[k] = math.Max(-huberDelta, math.Min(huberDelta, e)) / float64(O)
			}
			l.net.backward(tp, dy)
			l.adam.step(&l.net, l.cfg.Rate)
		}
	}
	l.ready = true
	l.path = l.path[:0]
}

// tape records a forward pass for backpropagation.
type tape struct {
	xs             []float64
	hs, cs         [][]float64 // h_t, c_t for t = 0..T (index 0 is the zero state)
	ig, fg, gg, og [][]float64
	hin            []float64 // scratch [h; x]
	pre            []float64 // scratch gate pre-activations
	out            []float64
}

func newTape(H, T int) *tape {
	mk := func(n int) [][]float64 {
		out := make([][]float64, n)
		for i := range out {
			out[i] = make([]float64, H)
		}
		return out
	}
	return &tape{hs: mk(T + 1), cs: mk(T + 1), ig: mk(T), fg: mk(T), gg: mk(T), og: mk(T),
		hin: make([]float64, H+1), pre: make([]float64, 4*H)}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// forward runs the sequence (at most as long as the tape) and returns the
// read-out after its last value, in the tape's buffer.
func (n *lstmNet) forward(xs []float64, tp *tape) []float64 {
	H := n.H
	tp.xs = xs
	clear(tp.hs[0])
	clear(tp.cs[0])
	for t, x := range xs {
		copy(tp.hin, tp.hs[t])
		tp.hin[H] = x
		copy(tp.pre, n.B)
		blas64.Gemv(blas.NoTrans, 1, n.W, blas64.Vector{N: H + 1, Inc: 1, Data: tp.hin}, 1, blas64.Vector{N: 4 * H, Inc: 1, Data: tp.pre})
		h, c, cPrev := tp.hs[t+1], tp.cs[t+1], tp.cs[t]
		for j := range H {
			i, f, g, o := sigmoid(tp.pre[j]), sigmoid(tp.pre[H+j]), math.Tanh(tp.pre[2*H+j]), sigmoid(tp.pre[3*H+j])
			tp.ig[t][j], tp.fg[t][j], tp.gg[t][j], tp.og[t][j] = i, f, g, o
			c[j] = f*cPrev[j] + i*g
			h[j] = o * math.Tanh(c[j])
		}
	}
	if cap(tp.out) < n.Out {
		tp.out = make([]float64, n.Out)
	}
	tp.out = tp.out[:n.Out]
	copy(tp.out, n.C)
	blas64.Gemv(blas.NoTrans, 1, n.V, blas64.Vector{N: H, Inc: 1, Data: tp.hs[len(xs)]}, 1, blas64.Vector{N: n.Out, Inc: 1, Data: tp.out})
	return tp.out
}

// backward accumulates the gradient of the loss whose derivative with
// respect to the outputs is dy.
func (n *lstmNet) backward(tp *tape, dy []float64) {
	H, T := n.H, len(tp.xs)
	g := &n.grad
	for k, d := range dy {
		g.C[k] += d
	}
	hT := blas64.Vector{N: H, Inc: 1, Data: tp.hs[T]}
	blas64.Ger(1, blas64.Vector{N: n.Out, Inc: 1, Data: dy}, hT, g.V)
	dh, dc, dpre := n.dh, n.dc, n.dpre
	blas64.Gemv(blas.Trans, 1, n.V, blas64.Vector{N: n.Out, Inc: 1, Data: dy}, 0, blas64.Vector{N: H, Inc: 1, Data: dh})
	clear(dc)
	for t := T - 1; t >= 0; t-- {
		c, cPrev := tp.cs[t+1], tp.cs[t]
		for j := range H {
			tc := math.Tanh(c[j])
			i, f, gg, o := tp.ig[t][j], tp.fg[t][j], tp.gg[t][j], tp.og[t][j]
			dc[j] += dh[j] * o * (1 - tc*tc)
			dpre[j] = dc[j] * gg * i * (1 - i)
			dpre[H+j] = dc[j] * cPrev[j] * f * (1 - f)
			dpre[2*H+j] = dc[j] * i * (1 - gg*gg)
			dpre[3*H+j] = dh[j] * tc * o * (1 - o)
			dc[j] *= f
		}
		copy(tp.hin, tp.hs[t])
		tp.hin[H] = tp.xs[t]
		blas64.Ger(1, blas64.Vector{N: 4 * H, Inc: 1, Data: dpre}, blas64.Vector{N: H + 1, Inc: 1, Data: tp.hin}, g.W)
		for k := range dpre {
			g.B[k] += dpre[k]
		}
		blas64.Gemv(blas.Trans, 1, n.W, blas64.Vector{N: 4 * H, Inc: 1, Data: dpre}, 0, blas64.Vector{N: H + 1, Inc: 1, Data: n.dhin})
		copy(dh, n.dhin[:H])
	}
}

func (n *lstmNet) zeroGrad() {
	clear(n.grad.W.Data)
	clear(n.grad.B)
	clear(n.grad.V.Data)
	clear(n.grad.C)
}

// adamState is Adam (Kingma and Ba, 2015) over the parameters in the order
// W, B, V, C, with the gradient clipped to norm 1 against exploding steps.
type adamState struct {
	m, v []float64
	t    int
}

func newAdam(n int) adamState { return adamState{m: make([]float64, n), v: make([]float64, n)} }

func (a *adamState) step(n *lstmNet, rate float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	params := [4][]float64{n.W.Data, n.B, n.V.Data, n.C}
	grads := [4][]float64{n.grad.W.Data, n.grad.B, n.grad.V.Data, n.grad.C}
	var norm float64
	for _, g := range grads {
		for _, x := range g {
			norm += x * x
		}
	}
	clip := 1.0
	if norm = math.Sqrt(norm); norm > 1 {
		clip = 1 / norm
	}
	c1, c2 := 1-math.Pow(b1, float64(a.t)), 1-math.Pow(b2, float64(a.t))
	k := 0
	for pi, ps := range params {
		for i := range ps {
			g := grads[pi][i] * clip
			a.m[k] = b1*a.m[k] + (1-b1)*g
			a.v[k] = b2*a.v[k] + (1-b2)*g*g
			ps[i] -= rate * (a.m[k] / c1) / (math.Sqrt(a.v[k]/c2) + eps)
			k++
		}
	}
}
