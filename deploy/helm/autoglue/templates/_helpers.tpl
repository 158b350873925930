{{/* Names and labels. */}}
{{- define "autoglue.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "autoglue.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "autoglue.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autoglue.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "autoglue.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "autoglue.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of one role: (dict "root" $ "role" "web"). */}}
{{- define "autoglue.roleSelectorLabels" -}}
{{ include "autoglue.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "autoglue.roleLabels" -}}
{{ include "autoglue.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "autoglue.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "autoglue.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "autoglue.image" -}}
{{- $repository := required "image.repository: the image you built and pushed (docs/kubernetes.md)" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The secrets read as files, as a list of {env, secret, key}: the required four (an error names
the missing one), then each optional one that is configured, then secrets.extra but for its
asEnv items. A secret given by value lives in the chart's own Secret under its variable name.
*/}}
{{- define "autoglue.secretRefs" -}}
{{- $own := printf "%s-secrets" (include "autoglue.fullname" .) -}}
{{- $refs := list -}}
{{- range $field := list "djangoSecretKey" "masterKeys" "databaseUrl" "redisUrl" "backupKeys" "tokenPepper" "googleClientSecret" "metricsToken" -}}
{{- $s := index $.Values.secrets $field -}}
{{- $env := $s.key -}}
{{- if $s.existingSecret -}}
{{- $refs = append $refs (dict "env" (include "autoglue.secretEnv" $field) "secret" $s.existingSecret "key" $s.key) -}}
{{- else if $s.value -}}
{{- $refs = append $refs (dict "env" (include "autoglue.secretEnv" $field) "secret" $own "key" (include "autoglue.secretEnv" $field)) -}}
{{- else if has $field (list "djangoSecretKey" "masterKeys" "databaseUrl" "redisUrl") -}}
{{- fail (printf "secrets.%s: set existingSecret (and key) or value" $field) -}}
{{- end -}}
{{- end -}}
{{- range .Values.secrets.extra -}}
{{- if not .asEnv -}}
{{- $refs = append $refs (dict "env" .name "secret" .existingSecret "key" .key) -}}
{{- end -}}
{{- end -}}
{{- toJson $refs -}}
{{- end -}}

{{/* The environment variable a secrets.<field> stands for. */}}
{{- define "autoglue.secretEnv" -}}
{{- index (dict "djangoSecretKey" "DJANGO_SECRET_KEY" "masterKeys" "AUTOGLUE_MASTER_KEYS" "databaseUrl" "DATABASE_URL" "redisUrl" "REDIS_URL" "backupKeys" "AUTOGLUE_BACKUP_KEYS" "tokenPepper" "TOKEN_PEPPER" "googleClientSecret" "GOOGLE_CLIENT_SECRET" "metricsToken" "METRICS_TOKEN") . -}}
{{- end -}}

{{- define "autoglue.secretsDir" -}}/run/secrets/autoglue{{- end -}}

{{/* Environment shared by every container: plain settings, then NAME_FILE for each secret. */}}
{{- define "autoglue.env" -}}
- name: AUTOGLUE_ENV
  value: production
# The pod's own address is allowed too: kubelet probes and Prometheus scrapes address the pod by
# its IP (Kubernetes expands $(POD_IP) from the variable above it).
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: DJANGO_ALLOWED_HOSTS
  value: {{ printf "$(POD_IP),%s" (join "," .Values.config.allowedHosts) | quote }}
- name: AUTOGLUE_BASE_URL
  value: {{ .Values.config.baseUrl | quote }}
{{- with .Values.config.csrfTrustedOrigins }}
- name: CSRF_TRUSTED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
- name: SECURE_PROXY_SSL_HEADER
  value: {{ .Values.config.secureProxySslHeader | toString | quote }}
- name: TRUSTED_PROXY_COUNT
  value: {{ .Values.config.trustedProxyCount | toString | quote }}
{{- with .Values.config.googleClientId }}
- name: GOOGLE_CLIENT_ID
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.backupS3Bucket }}
- name: BACKUP_S3_BUCKET
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.backupS3Region }}
- name: BACKUP_S3_REGION
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range (include "autoglue.secretRefs" . | fromJsonArray) }}
- name: {{ .env }}_FILE
  value: {{ printf "%s/%s" (include "autoglue.secretsDir" $) .env | quote }}
{{- end }}
{{- /* For libraries that read only the environment (boto3): the variable itself, from the
Secret by reference, so the value is still never rendered. */}}
{{- range .Values.secrets.extra }}
{{- if .asEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The secrets as one read-only projected volume, a file per variable. */}}
{{- define "autoglue.secretsVolume" -}}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range (include "autoglue.secretRefs" . | fromJsonArray) }}
      - secret:
          name: {{ .secret }}
          items:
            - key: {{ .key }}
              path: {{ .env }}
      {{- end }}
{{- end -}}

{{- define "autoglue.volumes" -}}
{{ include "autoglue.secretsVolume" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "autoglue.volumeMounts" -}}
- name: secrets
  mountPath: {{ include "autoglue.secretsDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level settings every Autoglue pod shares: (dict "root" $ "role" $roleValues). */}}
{{- define "autoglue.podCommon" -}}
serviceAccountName: {{ include "autoglue.serviceAccountName" .root }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
volumes:
  {{- include "autoglue.volumes" .root | nindent 2 }}
{{- end -}}

{{/* An exec probe running the image's health check for this role; the list is its arguments. */}}
{{- define "autoglue.execProbe" -}}
exec:
  command: {{ concat (list "python" "/app/docker/healthcheck.py") . | toJson }}
{{- end -}}

{{/* Restarts pods when the chart's own Secret changes. */}}
{{- define "autoglue.podAnnotations" -}}
checksum/secrets: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
