package legodns

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// set converts s to the key's type and stores it in the Config struct at
// root (a settable struct value). Errors describe the expected form and
// never quote s.
func (k *key) set(root reflect.Value, s string) error {
	v := fieldAt(root, k.index)
	switch k.kind {
	case kindString:
		v.SetString(s)
	case kindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("expected true or false")
		}
		v.SetBool(b)
	case kindInt:
		n, err := strconv.ParseInt(s, 10, k.typ.Bits())
		if err != nil {
			return fmt.Errorf("expected a whole number (%d-bit)", k.typ.Bits())
		}
		v.SetInt(n)
	case kindUint:
		n, err := strconv.ParseUint(s, 10, k.typ.Bits())
		if err != nil {
			return errors.New("expected a whole number >= 0")
		}
		v.SetUint(n)
	case kindFloat:
		f, err := strconv.ParseFloat(s, k.typ.Bits())
		if err != nil {
			return errors.New("expected a number")
		}
		v.SetFloat(f)
	case kindDuration, kindHTTPTimeout:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		if k.kind == kindDuration {
			v.SetInt(int64(d))
			break
		}
		// Keep the rest of the client lego's defaults made (its
		// transport); only the timeout changes.
		c := &http.Client{}
		if !v.IsNil() {
			*c = *(v.Interface().(*http.Client))
		}
		c.Timeout = d
		v.Set(reflect.ValueOf(c))
	case kindURL, kindURLVal:
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return errors.New("expected an absolute URL such as https://host/path")
		}
		if k.kind == kindURL {
			v.Set(reflect.ValueOf(u))
		} else {
			v.Set(reflect.ValueOf(*u))
		}
	case kindStrings:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		sv := reflect.MakeSlice(k.typ, len(list), len(list))
		for i, item := range list {
			sv.Index(i).SetString(item)
		}
		v.Set(sv)
	case kindMap:
		m := reflect.MakeMap(k.typ)
		for _, pair := range strings.Split(s, ",") {
			if pair = strings.TrimSpace(pair); pair == "" {
				continue
			}
			name, val, ok := strings.Cut(pair, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return errors.New("expected comma-separated key:value pairs")
			}
			m.SetMapIndex(reflect.ValueOf(strings.TrimSpace(name)).Convert(k.typ.Key()),
				reflect.ValueOf(strings.TrimSpace(val)).Convert(k.typ.Elem()))
		}
		v.Set(m)
	}
	return nil
}

// parseDuration accepts a Go duration ("2m30s") or whole seconds ("150").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > int64(1<<62/time.Second) {
			return 0, errors.New("expected a duration such as 2m or a number of seconds >= 0")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("expected a duration such as 2m, 90s, or a number of seconds")
	}
	return d, nil
}

// fieldAt returns the field at index below root, allocating the nil
// pointers to structs on the way.
func fieldAt(root reflect.Value, index []int) reflect.Value {
	v := root
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}
