"""The customer's pages, the admin, and Django's login."""

from crm import views
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("", views.account, name="account"),
    path("cancel/<str:step>/", views.cancel, name="cancel"),
]
