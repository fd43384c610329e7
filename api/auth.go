package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// access is what a route needs.
type access int

const (
	open    access = iota // anyone: /healthz, /readyz, the OpenAPI document
	read                  // a read or operate token, or none with open_read
	operate               // an operate token, always
)

// tokenName and tokenOperate are the gin context keys of the name of the
// request's token and whether it has the operate scope.
const (
	tokenName    = "kapkan_token"
	tokenOperate = "kapkan_token_operate"
)

// authorize returns the middleware that lets through the requests a
// route's access allows. A token is compared with every configured one in
// constant time (SHA-256 of both, so the length of a token is not timed
// either), and never written anywhere.
func (s *Server) authorize(need access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if need == open {
			return
		}
		h := c.GetHeader("Authorization")
		if h == "" {
			if need == read && s.openRead {
				return
			}
			s.refuse(c, ErrUnauthorized, "no token")
			return
		}
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			s.refuse(c, ErrUnauthorized, "not a bearer token")
			return
		}
		tk := s.match(strings.TrimSpace(secret))
		if tk == nil {
			s.refuse(c, ErrUnauthorized, "unknown token")
			return
		}
		c.Set(tokenName, tk.name)
		c.Set(tokenOperate, tk.operate)
		if need == operate && !tk.operate {
			s.refuse(c, ErrForbidden, "read token on a write route")
			return
		}
	}
}

// match returns the configured token equal to secret, or nil. Every token
// is compared, whatever matched first.
func (s *Server) match(secret string) *token {
	sum := sha256.Sum256([]byte(secret))
	var found *token
	for i := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], s.tokens[i].sum[:]) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

// refuse answers an authentication failure and logs why, without the
// token.
func (s *Server) refuse(c *gin.Context, err error, why string) {
	args := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "remote", c.ClientIP(), "why", why}
	if name := c.GetString(tokenName); name != "" {
		args = append(args, "token_name", name)
	}
	s.log.Warn("api request refused", args...)
	if errors.Is(err, ErrUnauthorized) {
		c.Header("WWW-Authenticate", `Bearer realm="kapkan"`)
	}
	s.fail(c, err)
}

// limitBody refuses a body over MaxBody: at once when its length is
// declared, else when reading passes the limit (decode reports it).
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBody {
		c.Header("Connection", "close")
		s.fail(c, ErrTooLarge)
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody)
	}
}

// isTooLarge reports whether a read failed on the body limit.
func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}
