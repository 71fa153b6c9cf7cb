package brecq

import (
	"math"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
)

// FoldBN folds every BatchNorm into the layer before it, as BRECQ (Li et al., 2021) does before quantizing: with
// a = γ/√(σ² + ε),
//
//	W'[o,…] = a[o]·W[o,…],   b'[o] = a[o]·(b[o] − μ[o]) + β[o]
//
// (b = 0 for a convolution without bias). The result holds "<layer>.weight"
// and "<layer>.bias" for every layer and no BatchNorm tensors; a QNet evaluates it
// (qOps).
func FoldBN(net *models.Net, p models.Params) (models.Params, error) {
	if err := net.Check(p); err != nil {
		return nil, err
	}
	out := models.Params{}
	for _, l := range net.Layers() {
		w := tensors.MustCopyFlatData[float32](p[l.Name+".weight"])
		shape := p[l.Name+".weight"].Shape().Dimensions
		b := make([]float32, l.Out)
		if l.Bias {
			copy(b, tensors.MustCopyFlatData[float32](p[l.Name+".bias"]))
		}
		if l.BN != "" {
			g := tensors.MustCopyFlatData[float32](p[l.BN+".weight"])
			beta := tensors.MustCopyFlatData[float32](p[l.BN+".bias"])
			mu := tensors.MustCopyFlatData[float32](p[l.BN+".running_mean"])
			v := tensors.MustCopyFlatData[float32](p[l.BN+".running_var"])
			per := len(w) / l.Out
			for o := 0; o < l.Out; o++ {
				if v[o] < 0 || math.IsNaN(float64(v[o])) {
					return nil, errorf("%s.running_var[%d] = %g is not a variance", l.BN, o, v[o])
				}
				a := float64(g[o]) / math.Sqrt(float64(v[o])+models.BNEps)
				for i := o * per; i < (o+1)*per; i++ {
					w[i] = float32(float64(w[i]) * a)
				}
				b[o] = float32(a*(float64(b[o])-float64(mu[o])) + float64(beta[o]))
			}
		}
		out[l.Name+".weight"] = tensors.FromFlatDataAndDimensions(w, shape...)
		out[l.Name+".bias"] = tensors.FromFlatDataAndDimensions(b, l.Out)
	}
	return out, nil
}
