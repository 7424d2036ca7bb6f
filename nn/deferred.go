package nn

// channelAffine is a value that is not stored: ReLU?(scale[ch]·src +
// shift[ch]) for every channel ch of src [N, C, inner] — a BatchNorm's
// output in training, left for the convolution that alone reads it to
// compute one group of images at a time, in cache, as it lowers them
// (ConvBNChain). The values are the ones BatchNorm would have stored.
type channelAffine struct {
	src          []float32
	scale, shift []float32
	relu         bool
	c, inner     int
}

// images writes images [i0, i1) of the value into dst and returns them.
func (a *channelAffine) images(dst []float32, i0, i1 int) []float32 {
	sz := a.c * a.inner
	dst = dst[:(i1-i0)*sz]
	for i := i0; i < i1; i++ {
		for ch := 0; ch < a.c; ch++ {
			o := (i*a.c + ch) * a.inner
			d := o - i0*sz
			affineInto(dst[d:d+a.inner], a.src[o:o+a.inner], a.scale[ch], a.shift[ch], a.relu)
		}
	}
	return dst
}
