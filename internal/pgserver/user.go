package pgserver

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// account is the unprivileged user the server programs run as when the
// caller is root.
type account struct {
	name     string
	uid, gid int
}

// unprivilegedUser returns nil when the caller is not root; otherwise the
// "postgres" user, or "nobody" when there is none.
func unprivilegedUser() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			continue
		}
		return &account{name: name, uid: uid, gid: gid}, nil
	}
	return nil, fmt.Errorf("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as (initdb and postgres refuse root)")
}
