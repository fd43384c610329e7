package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kapkan-io/kapkan/mitigate"
)

// Sentinel errors of the API; errorFor maps them (and the mitigation
// manager's) to a status and a stable code.
var (
	ErrUnauthorized = errors.New("a valid bearer token is needed (Authorization: Bearer <token>)")
	ErrForbidden    = errors.New("the token's scope does not allow this (want operate)")
	ErrBadRequest   = errors.New("bad request")
	ErrNotFound     = errors.New("not found")
	ErrTooLarge     = fmt.Errorf("request body over %d bytes", MaxBody)
	ErrUnavailable  = errors.New("not available in this daemon")
	// ErrRefused is a reload whose new rules or configuration have errors:
	// the running ones go on.
	ErrRefused = errors.New("refused")
)

// errorBody is the JSON of every error: {"error": {...}}.
type errorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Reason is the safety guard's refusal label ("allowlisted").
	Reason string `json:"reason,omitempty"`
	// Errors are the parts of a failed reload, one per problem.
	Errors []string `json:"errors,omitempty"`
}

// refusals are the safety guard's refusals: a request that is well formed
// but not allowed (422).
var refusals = []error{mitigate.ErrNotProtected, mitigate.ErrAllowlisted, mitigate.ErrPrefixTooShort,
	mitigate.ErrBlackholeCap, mitigate.ErrFlowSpecCap, mitigate.ErrRateLimited}

// errorFor maps an error to its status and body: the one place where the
// API decides what a failure means to a client. An error it does not know
// is a 500 whose message says nothing of the cause (it is logged).
func errorFor(err error) (int, errorBody) {
	e := apiError{Message: err.Error()}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnauthorized):
		status, e.Code = http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrForbidden):
		status, e.Code = http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrTooLarge):
		status, e.Code = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrNotFound):
		status, e.Code = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrUnavailable):
		status, e.Code = http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, ErrBadRequest), errors.Is(err, mitigate.ErrInvalid):
		status, e.Code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, ErrRefused):
		status, e.Code = http.StatusUnprocessableEntity, "refused"
		var re refusedError
		if errors.As(err, &re) {
			e.Errors = parts(re.err)
			e.Message = "reload refused, the running state goes on"
			if len(e.Errors) > 0 {
				e.Message += ": " + e.Errors[0]
			}
		}
	default:
		for _, r := range refusals {
			if errors.Is(err, r) {
				status, e.Code, e.Reason = http.StatusUnprocessableEntity, "refused", mitigate.RefusalReason(err)
				return status, errorBody{e}
			}
		}
		e.Code, e.Message = "internal", "internal error (see the daemon's log)"
	}
	return status, errorBody{e}
}

// refusedError is a reload that was refused: its error lists the
// problems.
type refusedError struct{ err error }

func (r refusedError) Error() string        { return r.err.Error() }
func (r refusedError) Is(target error) bool { return target == ErrRefused }

// parts lists the problems of an error: each error it joins, else each
// line of its text.
func parts(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, parts(e)...)
		}
		return out
	}
	var out []string
	for l := range strings.Lines(err.Error()) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// fail writes err as the response.
func (s *Server) fail(c *gin.Context, err error) {
	status, body := errorFor(err)
	if status == http.StatusInternalServerError {
		s.log.Error("api request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	c.Abort()
	c.PureJSON(status, body)
}

// badRequest is an ErrBadRequest with a message of its own.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}
