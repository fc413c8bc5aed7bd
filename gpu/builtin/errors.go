package builtin

import (
	"fmt"
	"net/http"

	"github.com/cocoon-network/cocoon/gpu/oaierr"
)

// The engine's refusals, in the words and codes OpenAI uses for the same faults.

func badRequest(msg string) *oaierr.Error {
	return &oaierr.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg}
}

func badParam(param, msg string) *oaierr.Error {
	return &oaierr.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: msg}
}

func errTooLarge() *oaierr.Error {
	return &oaierr.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Message: "request body too large"}
}

func errUnknownModel(model string) *oaierr.Error {
	return &oaierr.Error{
		Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("The model `%s` does not exist.", model),
	}
}
