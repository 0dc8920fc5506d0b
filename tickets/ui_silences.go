package tickets

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/store"
)

// The Silences page works on the silences of Sluice's alerting through its
// HTTP API (alerting_url): viewers see them, operators create and expire them.

// maxSilence bounds a silence created here, as the alerting API caps them (api.max_silence_duration,
// default 7 days); a longer one is a routing change.
const maxSilence = 7 * 24 * time.Hour

type silenceForm struct {
	Matchers, Duration, Comment string
	IncidentID                  uint
}

type silencesData struct {
	Configured  bool
	URL         string
	Silences    []silences.Silence
	Form        silenceForm
	Errors      []string
	Unreachable string
	CanAct      bool
}

func (s *Service) silencesPage(c *gin.Context) {
	form := silenceForm{Duration: "2h"}
	if v, err := strconv.ParseUint(c.Query("incident"), 10, 32); err == nil {
		if d, err := s.store.IncidentDetail(c.Request.Context(), uint(v)); err == nil {
			form.IncidentID = d.ID
			form.Matchers = incidentMatchers(d)
			form.Comment = fmt.Sprintf("Incident #%d: %s", d.ID, d.Title)
		}
	}
	s.renderSilences(c, http.StatusOK, form, nil)
}

// incidentMatchers are the labels all of an incident's alarms share, minus
// the ones that change per firing, as silence matchers.
func incidentMatchers(d *store.IncidentDetail) string {
	common := map[string]string{}
	for i, a := range d.Alarms {
		if i == 0 {
			for k, v := range a.Labels {
				common[k] = v
			}
			continue
		}
		for k, v := range common {
			if a.Labels[k] != v {
				delete(common, k)
			}
		}
	}
	keys := make([]string, 0, len(common))
	for k := range common {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ms []silences.Matcher
	for _, k := range keys {
		ms = append(ms, silences.Matcher{Name: k, Value: common[k]})
	}
	return strings.ReplaceAll(silences.FormatMatchers(ms), ", ", "\n")
}

func (s *Service) renderSilences(c *gin.Context, code int, form silenceForm, errs []string) {
	d := silencesData{Configured: s.silences != nil, Form: form, Errors: errs, CanAct: who(c).Role.Allows(store.RoleOperator)}
	if s.silences != nil {
		d.URL = s.silences.URL()
		list, err := s.silences.List(c.Request.Context())
		if err != nil {
			s.log.Warn("alerting API", "url", d.URL, "err", err)
			d.Unreachable = err.Error()
			if code == http.StatusOK {
				code = http.StatusBadGateway
			}
		}
		d.Silences = list
	}
	s.render(c, code, "silences", "layout", pageData{Title: "Silences", Nav: "silences", Data: d})
}

func (s *Service) uiCreateSilence(c *gin.Context) {
	form := silenceForm{Matchers: c.PostForm("matchers"), Duration: strings.TrimSpace(c.PostForm("duration")), Comment: c.PostForm("comment")}
	id, err := s.createSilence(c.Request.Context(), who(c), silenceRequest{Matchers: form.Matchers, Duration: form.Duration, Comment: form.Comment})
	var fe fieldErrors
	var apiErr *silences.Error
	switch {
	case errors.Is(err, errNoSilences):
		s.uiError(c, http.StatusServiceUnavailable, err.Error())
		return
	case errors.As(err, &fe):
		s.renderSilences(c, http.StatusBadRequest, form, fe)
		return
	case errors.As(err, &apiErr):
		s.renderSilences(c, http.StatusBadRequest, form, []string{"alerting refused the silence: " + apiErr.Message})
		return
	case isServiceError(err):
		s.uiStoreError(c, err)
		return
	case err != nil && id == "":
		s.log.Warn("create silence", "err", err)
		s.renderSilences(c, http.StatusBadGateway, form, []string{"could not reach alerting: " + err.Error()})
		return
	case err != nil:
		s.uiStoreError(c, err) // created, but the audit log failed
		return
	}
	s.log.Info("silence created", "silence", id, "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, "/silences#silence-"+id)
}

func (s *Service) uiExpireSilence(c *gin.Context) {
	id := c.Param("id")
	err := s.expireSilence(c.Request.Context(), who(c), id)
	var apiErr *silences.Error
	switch {
	case errors.Is(err, errNoSilences):
		s.uiError(c, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, silences.ErrNotFound):
		s.uiError(c, http.StatusNotFound, "no such silence")
		return
	case errors.As(err, &apiErr):
		s.uiError(c, http.StatusBadRequest, "alerting refused: "+apiErr.Message)
		return
	case isServiceError(err):
		s.uiStoreError(c, err)
		return
	case err != nil:
		s.log.Warn("expire silence", "silence", id, "err", err)
		s.uiError(c, http.StatusBadGateway, "could not reach alerting: "+err.Error())
		return
	}
	s.log.Info("silence expired", "silence", id, "by", who(c).Name)
	c.Redirect(http.StatusSeeOther, "/silences")
}
