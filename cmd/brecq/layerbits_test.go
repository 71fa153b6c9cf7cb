package main

import (
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq/models"
)

// TestParseLayerBits: on MobileNetV2 (torchvision: 17 inverted residuals,
// each with one 3×3 depthwise conv; 1×1 convs = block 1's projection, the
// expansion and projection of blocks 2–17, and features.18: 1 + 2·16 + 1 = 34)
// the classes select exactly those layers, a layer name wins over its
// class, and bad specs are refused naming the item.
func TestParseLayerBits(t *testing.T) {
	net, err := models.New("mobilenetv2-s1", 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseLayerBits("depthwise=2, pointwise=4,features.5.conv.1.0=8", net)
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	for _, b := range got {
		count[b]++
	}
	if count[2] != 16 || count[8] != 1 || count[4] != 34 || len(got) != 51 {
		t.Errorf("bits per layer %v: want 16 depthwise at 2, features.5's at 8, 34 pointwise at 4", count)
	}
	for _, n := range []string{"features.1.conv.0.0", "features.17.conv.1.0"} {
		if got[n] != 2 {
			t.Errorf("%s (depthwise): %d bits, want 2", n, got[n])
		}
	}
	for _, n := range []string{"features.1.conv.1", "features.2.conv.0.0", "features.17.conv.2", "features.18.0"} {
		if got[n] != 4 {
			t.Errorf("%s (pointwise): %d bits, want 4", n, got[n])
		}
	}
	for _, n := range []string{"features.0.0", "classifier.1"} {
		if _, ok := got[n]; ok {
			t.Errorf("%s (stem / classifier) selected", n)
		}
	}
	if m, err := parseLayerBits("", net); m != nil || err != nil {
		t.Errorf("empty spec: %v, %v", m, err)
	}
	r20, _ := models.New("resnet20", 1, 28, 28, 10)
	for spec, want := range map[string]string{
		"depthwise":           `"depthwise" is not SEL=BITS`,
		"depthwise=9":         "bits of depthwise",
		"features.99.0=4":     `no layer "features.99.0"`,
		"pointwise=x":         `"pointwise=x" is not SEL=BITS`,
		"depthwise=2,layer=3": `no layer "layer"`,
	} {
		if _, err := parseLayerBits(spec, net); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--layer-bits %q: error %v, want it to mention %q", spec, err, want)
		}
	}
	if _, err := parseLayerBits("depthwise=2", r20); err == nil || !strings.Contains(err.Error(), "no depthwise convolution") {
		t.Errorf("resnet20 depthwise: %v", err)
	}
}
