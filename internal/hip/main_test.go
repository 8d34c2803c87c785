package hip

import _ "github.com/gretabisect/gretabisect/internal/testutil"
