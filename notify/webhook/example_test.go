package webhook_test

import (
	"log"

	"github.com/autocert-dev/autocert"
	"github.com/autocert-dev/autocert/notify/webhook"
)

// Push renewals, failures and expiry warnings to an ntfy topic; the same
// goes for Slack (webhook.Slack) or Gotify (webhook.Gotify).
func Example() {
	cfg, err := autocert.LoadConfig("autocert.yml")
	if err != nil {
		log.Fatal(err)
	}
	user, legoCfg, err := cfg.GetLegoConfig()
	if err != nil {
		log.Fatal(err)
	}
	hook, err := webhook.New("https://ntfy.sh/my-certificates", webhook.WithFormat(webhook.Ntfy))
	if err != nil {
		log.Fatal(err)
	}
	provider, err := autocert.NewProvider(cfg, user, legoCfg, autocert.WithNotifier(hook))
	if err != nil {
		log.Fatal(err)
	}
	_ = provider
}

// A template shapes the body for any other receiver, here a Discord
// webhook.
func ExampleWithTemplate() {
	hook, err := webhook.New("https://discord.com/api/webhooks/ID/TOKEN",
		webhook.WithTemplate(`{"content": {{json (printf "**%s**\n%s" .Title .Message)}}}`, "application/json"))
	if err != nil {
		log.Fatal(err)
	}
	_ = hook
}
