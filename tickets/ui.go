package tickets

import "github.com/gin-gonic/gin"

func (s *Service) uiRoutes(r *gin.Engine) {}
