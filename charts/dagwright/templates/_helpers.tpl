{{- define "dagwright.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dagwright.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dagwright.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "dagwright.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dagwright.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dagwright.redisSecret" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "dagwright.fullname" .) -}}
{{- else -}}
{{- .Values.redis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "dagwright.redisURL" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "dagwright.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{- /* The ConfigMap (key ca.crt) node pods and the operator trust Redis' certificate with; only for rediss://. */ -}}
{{- define "dagwright.redisCA" -}}
{{- with .Values.redis.tls.caConfigMap -}}
{{- if $.Values.redis.enabled -}}
{{- fail "redis.tls.caConfigMap: the bundled Redis (redis.enabled) serves no TLS; set redis.url to your own rediss://... Redis instead" -}}
{{- end -}}
{{- if not (hasPrefix "rediss://" $.Values.redis.url) -}}
{{- fail "redis.tls.caConfigMap needs redis.url to be rediss://... (TLS)" -}}
{{- end -}}
{{- . -}}
{{- end -}}
{{- end -}}
