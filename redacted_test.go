package autocert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

const redactedTestSecret = "hunter2-very-secret"

func TestRedactedValue(t *testing.T) {
	r := Redacted(redactedTestSecret)
	if r.Value() != redactedTestSecret {
		t.Errorf("Value() = %q", r.Value())
	}
	if r.String() != "[REDACTED]" {
		t.Errorf("String() = %q", r.String())
	}
	if Redacted("").String() != "" {
		t.Error("an empty secret should render empty")
	}
}

func TestRedactedRenderings(t *testing.T) {
	r := Redacted(redactedTestSecret)
	type holder struct {
		Token Redacted
		Opts  Options
	}
	h := holder{Token: r, Opts: Options{"token": r}}
	renderings := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-30v", "%T"} {
		renderings["fmt "+verb] = fmt.Sprintf(verb, r)
		renderings["fmt struct "+verb] = fmt.Sprintf(verb, h)
		renderings["fmt pointer "+verb] = fmt.Sprintf(verb, &h)
	}
	renderings["Sprint"] = fmt.Sprint(r, h.Opts)
	renderings["Sprintln"] = fmt.Sprintln(r, h)

	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	renderings["JSON"] = string(j)
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	renderings["YAML"] = string(y)
	text, _ := r.MarshalText()
	renderings["MarshalText"] = string(text)

	var buf bytes.Buffer
	logger := zerolog.New(&buf)
	logger.Info().Stringer("s", r).Interface("i", r).Any("a", h).Msgf("%v", r)
	logger.Info().Fields(map[string]any{"opts": h.Opts}).Send()
	logger.Info().Interface("ptr", &h).Send()
	renderings["zerolog"] = buf.String()

	for what, out := range renderings {
		if strings.Contains(out, redactedTestSecret) || strings.Contains(out, fmt.Sprintf("%x", redactedTestSecret)) ||
			strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", redactedTestSecret)) {
			t.Errorf("%s shows the secret: %s", what, out)
		}
	}
	if !strings.Contains(renderings["JSON"], `"Token":"[REDACTED]"`) || !strings.Contains(renderings["YAML"], "[REDACTED]") {
		t.Errorf("renderings should say [REDACTED]: %s / %s", renderings["JSON"], renderings["YAML"])
	}
}

func TestRedactedDecodes(t *testing.T) {
	var fromJSON struct{ Token Redacted }
	if err := json.Unmarshal([]byte(`{"Token":"`+redactedTestSecret+`"}`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	var fromYAML struct {
		Token Redacted `yaml:"token"`
	}
	if err := yaml.Unmarshal([]byte("token: "+redactedTestSecret+"\n"), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if fromJSON.Token.Value() != redactedTestSecret || fromYAML.Token.Value() != redactedTestSecret {
		t.Errorf("decoded %q and %q", fromJSON.Token.Value(), fromYAML.Token.Value())
	}
}
