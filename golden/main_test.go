package golden

import _ "github.com/gretabisect/gretabisect/internal/testutil" // go test ./... -update
