"""{% dashboard as figures %}: the admin index's figures for the user viewing it (the admin's
own index view stays as it is; its template asks for these)."""

from django import template

from postbacks.dashboard import dashboard_figures

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context):
    return dashboard_figures(user=context["request"].user)
