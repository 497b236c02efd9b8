package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/spf13/cobra"
)

// runInput reads -d: inline data, @file, or - for standard input.
func runInput(cmd *cobra.Command, data string) ([]byte, error) {
	switch {
	case data == "-":
		return io.ReadAll(cmd.InOrStdin())
	case strings.HasPrefix(data, "@"):
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, modelship.Errorf(modelship.EINVALID, "input file %q cannot be read: %v", data[1:], err)
		}
		return b, nil
	case data == "":
		return nil, modelship.Errorf(modelship.EINVALID, "give the input with -d: inline JSON, @file.json, or - for standard input")
	}
	return []byte(data), nil
}

// score posts input to a scoring URI with the right credential and prints
// the answer; a non-2xx answer is an error carrying status and body.
func score(cmd *cobra.Command, c *client.Client, uri, credential, pin string, input []byte) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, uri, bytes.NewReader(input))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	if pin != "" {
		req.Header.Set("azureml-model-deployment", pin)
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		return modelship.Errorf(modelship.EUNAVAILABLE, "cannot reach the scoring URI %s: %v", uri, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return modelship.Errorf(modelship.EINTERNAL, "scoring failed with %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if v := resp.Header.Get("azureml-model-deployment"); v != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "answered by version %s\n", v)
	}
	out := cmd.OutOrStdout()
	out.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(out)
	}
	return nil
}

func newServiceRunCmd() *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "run NAME -d INPUT",
		Short: "Score input with a service, as Azure's `az ml service run` (the key or token is fetched for you)",
		Example: `  modelship service run mysvc -d '{"data": [[1, 2, 3, 4]]}'
  modelship service run mysvc -d @sample-request.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := runInput(cmd, data)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			svc, err := c.Services.Get(cmd.Context(), ws, args[0])
			if err != nil {
				return err
			}
			cred, err := credential(svc.Settings.AuthMode,
				func() (*modelship.ServiceKeys, error) { return c.Services.GetKeys(cmd.Context(), ws, args[0]) },
				func() (*modelship.AccessToken, error) { return c.Services.GetToken(cmd.Context(), ws, args[0]) })
			if err != nil {
				return err
			}
			return score(cmd, c, svc.ScoringURI, cred, "", input)
		},
	}
	cmd.Flags().StringVarP(&data, "input-data", "d", "", "input: inline JSON, @file.json, or - for standard input")
	return cmd
}

func newEndpointRunCmd() *cobra.Command {
	var data, version string
	cmd := &cobra.Command{
		Use:   "run NAME -d INPUT [--version-name V]",
		Short: "Score input with an endpoint (split by traffic, or pinned to a version)",
		Example: `  modelship endpoint run fraud -d @sample-request.json
  modelship endpoint run fraud -d @sample-request.json --version-name green`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := runInput(cmd, data)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			ws := workspaceFlag(cmd)
			ep, err := c.Endpoints.Get(cmd.Context(), ws, args[0], false)
			if err != nil {
				return err
			}
			cred, err := credential(ep.AuthMode,
				func() (*modelship.ServiceKeys, error) { return c.Endpoints.GetKeys(cmd.Context(), ws, args[0]) },
				func() (*modelship.AccessToken, error) { return c.Endpoints.GetToken(cmd.Context(), ws, args[0]) })
			if err != nil {
				return err
			}
			return score(cmd, c, ep.ScoringURI, cred, version, input)
		},
	}
	cmd.Flags().StringVarP(&data, "input-data", "d", "", "input: inline JSON, @file.json, or - for standard input")
	cmd.Flags().StringVar(&version, "version-name", "", "pin the request to this version")
	return cmd
}

func newServiceFetchAccessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fetch-access NAME",
		Short: "Print a token and the command that runs a replica of a deployed service elsewhere (it fetches its models and code)",
		Long: `fetch-access issues a token (valid 30 days) with which ` + "`modelship serve-model`" + ` downloads a deployed
service's models and source folder from this server, verified by sha256, and serves them: a replica of
the service on another machine or in a container. For an endpoint version, give <endpoint>.<version>.`,
		Example: `  modelship service fetch-access mysvc
  modelship service fetch-access fraud.green -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			fa, err := c.Services.FetchAccess(cmd.Context(), workspaceFlag(cmd), args[0])
			if err != nil {
				return err
			}
			if f, _ := outputFormat(cmd); f == "json" {
				return printJSON(cmd, fa)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "modelship serve-model --fetch-url %s --fetch-deployment %s --fetch-token %s --port 5001\n", fa.URL, fa.Deployment, fa.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "The token expires on %s.\n", fa.ExpiryOn.Local().Format("2006-01-02 15:04"))
			return nil
		},
	}
	outputFlag(cmd)
	return cmd
}

// credential returns what to send as the bearer for an auth mode: the
// primary key, a fresh token, or nothing for an open service.
func credential(mode string, keys func() (*modelship.ServiceKeys, error), token func() (*modelship.AccessToken, error)) (string, error) {
	switch mode {
	case modelship.AuthKey:
		k, err := keys()
		if err != nil {
			return "", err
		}
		return k.PrimaryKey, nil
	case modelship.AuthToken:
		t, err := token()
		if err != nil {
			return "", err
		}
		return t.AccessToken, nil
	}
	return "", nil
}
