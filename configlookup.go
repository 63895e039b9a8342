package autocert

import "fmt"

// LoadConfigLookup is LoadConfig with the environment variables of ${VAR}
// references looked up by lookup instead of os.LookupEnv: a program may
// take them from elsewhere, or tolerate some being unset (a tool that
// only shows what is stored needs no credential). As with LoadConfig, a
// variable for which lookup reports false, referenced without a default,
// is an error naming it. lookup's value is used as it is, without
// further expansion.
func LoadConfigLookup(path string, lookup func(name string) (value string, ok bool)) (*Config, error) {
	data, err := readFileLimited(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("reading autocert config: %w", err)
	}
	return parseConfig(data, path, lookup)
}
