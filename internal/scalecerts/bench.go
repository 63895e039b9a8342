package scalecerts

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// SizesEnv names the environment variable that replaces the numbers of
// certificates of the scale benchmarks, such as "100,1000".
const SizesEnv = "AUTOCERT_SCALE_SIZES"

// Sizes returns the numbers of certificates of the scale benchmarks:
// 100, 1,000, 10,000 and 100,000, or those SizesEnv lists.
func Sizes() ([]int, error) {
	env := os.Getenv(SizesEnv)
	if env == "" {
		return []int{100, 1_000, 10_000, 100_000}, nil
	}
	var sizes []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, errors.New(SizesEnv + ": " + strconv.Quote(f) + " is not a size")
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// NoDNS is the DNS-01 provider of the scale benchmarks' configs: they
// never order, so it refuses whatever it is asked.
type NoDNS struct{}

// Present refuses: the benchmarks order nothing.
func (NoDNS) Present(domain, token, keyAuth string) error {
	return errors.New("scale benchmark: no DNS")
}

// CleanUp has nothing to remove.
func (NoDNS) CleanUp(domain, token, keyAuth string) error { return nil }
